"""Write the OpenAPI document of hearme to openapi/openapi.json (contract §8).

    python scripts/export_openapi.py          # regenerate the committed document
    python scripts/export_openapi.py --check  # exit 1 if the committed one is stale

The document is exactly what the running service serves at /openapi.json, in FastAPI's
own key order, indented by two spaces, with a trailing newline.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "openapi" / "openapi.json"


def document() -> dict[str, Any]:
    """The document of the app in this working tree (not of an older installed copy)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from api.app import create_app
    from service.settings import Settings

    app = create_app(Settings())
    try:
        return app.openapi()
    finally:
        app.state.database.dispose()


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only compare; exit 1 if the file differs"
    )
    parser.add_argument("--output", type=Path, default=TARGET, help="where to write")
    args = parser.parse_args(argv)
    text = render(document())
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != text:
            print(
                f"{args.output} is out of date: run python scripts/export_openapi.py",
                file=sys.stderr,
            )
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
