import sys

from cftui.cli import main

sys.exit(main())
