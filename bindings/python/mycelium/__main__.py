"""`python3 -m mycelium doctor ...` (see mycelium.doctor)."""

import sys

from .doctor import main


def _run() -> int:
    if len(sys.argv) < 2 or sys.argv[1] != "doctor":
        print("usage: python3 -m mycelium doctor [--schema MODULE] [--unix PATH] [--tcp HOST:PORT] "
              "[--secret S] [--timeout SECONDS]", file=sys.stderr)
        return 2
    return main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(_run())
