"""`python -m cftui.age`: the child process of `cftui.age.child`."""

import sys

from cftui.age.child import main

if __name__ == "__main__":  # imported (a walk of the package), it does nothing
    sys.exit(main(sys.argv[1:]))
