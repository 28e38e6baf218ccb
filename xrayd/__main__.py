import sys

from xrayd.cli import main

sys.exit(main())
