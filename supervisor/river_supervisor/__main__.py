import sys

from river_supervisor.cli import main

if __name__ == "__main__":
    sys.exit(main())
