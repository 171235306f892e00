import sys

from rerank_scaling.cli import main

sys.exit(main())
