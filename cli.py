"""``m2pdance``: the pack's command line (weights management; training lives in ``m2pdance-train``)."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .m2penc.errors import M2PDanceError
    from .weights_manifest import cli as weights_cli

    parser = argparse.ArgumentParser(prog="m2pdance", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    weights_cli.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except M2PDanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
