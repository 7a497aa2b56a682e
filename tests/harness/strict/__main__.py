import sys

from harness.strict.proxy import main

sys.exit(main())
