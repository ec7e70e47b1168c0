import sys

from distillery.app.cli import main

sys.exit(main())
