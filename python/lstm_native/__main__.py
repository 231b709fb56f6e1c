"""python -m lstm_native: the same command as ``lstm-native``."""
import sys

from .cli import main

sys.exit(main())
