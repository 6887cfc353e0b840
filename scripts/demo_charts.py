"""Render the demo's Tables 1-3 (and the wave comparison) as PNG charts into docs/.

    python scripts/demo_charts.py [--out docs]

Loads the demo study into a scratch SQLite database and asks the API for each chart, as
a client would (`?format=png`), so the pictures in the README are what hearme serves.
"""

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHARTS = {
    "table1-roles.png": "/stats/composition/role",
    "table2-confidence.png": "/stats/likert/trust_confidence",
    "table2-confidence-by-site.png": "/stats/likert/trust_confidence?by=site",
    "table3-themes.png": "/stats/themes/trust_actions",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from fastapi.testclient import TestClient

    from api.app import create_app
    from schemas.keys import KeyCreate, Role
    from service.database import Database, upgrade
    from service.demo import load_demo
    from service.keys import create_key
    from service.settings import Settings

    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(database_url=f"sqlite:///{scratch}/demo.db")
        upgrade(settings)
        database = Database(settings)
        with database.session() as session:
            survey, _ = load_demo(session)
            _, token = create_key(session, data=KeyCreate(name="charts", role=Role.admin))
        args.out.mkdir(parents=True, exist_ok=True)
        with TestClient(create_app(settings, database=database)) as client:
            for name, path in CHARTS.items():
                joiner = "&" if "?" in path else "?"
                response = client.get(
                    f"/v1/surveys/{survey}{path}{joiner}format=png",
                    headers={"Authorization": f"Bearer {token}"},
                )
                response.raise_for_status()
                (args.out / name).write_bytes(response.content)
                print(args.out / name)
        database.dispose()


if __name__ == "__main__":
    main()
