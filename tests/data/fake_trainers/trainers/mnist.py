import sys

from trainers._fake import main

sys.exit(main("mnist"))
