"""`python -m cftui.age`: the child process of `cftui.age.child`."""

import sys

from cftui.age.child import main

sys.exit(main(sys.argv[1:]))
