import sys

from berth.runtime.builtin.cli import main

sys.exit(main())
