"""The floor of the decision benchmark: the cheapest FastAPI endpoint that answers like /v1/decisions.

``POST /floor`` returns a constant, pre-encoded JSON body of about 1.3 KB (shaped like a decision with
two bundles; a real decision with three bundles is about as large) from an ``async def`` handler: no
body parsing, no auth, no I/O. It is served the
way ``recommender serve`` serves the recommender: uvicorn, one worker, uvicorn's ``auto`` loop and
HTTP parser (uvloop and httptools, installed with ``uvicorn[standard]``), ``log_config=None``, and no
access log (the recommender's ``uvicorn.access`` logger is set to WARNING, so it writes none either).

    python bench/floor_app.py --port 8090
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from fastapi import FastAPI
from starlette.responses import Response


def _bundle(n: int) -> dict[str, object]:
    return {
        "product": {
            "id": f"WM-R3-00{n}",
            "name": "稳健理财 90 天",
            "type": "wealth_management",
            "risk_rating": 3,
        },
        "content": {
            "id": f"CT-00{n}",
            "version": 2,
            "channel": "app",
            "fields": {
                "title": "到期资金有新去处",
                "body": "您的定期存款即将到期，这款 90 天稳健理财或许适合您。",
            },
        },
        "right": {"id": f"RT-CASHBACK-{n}", "type": "cashback"},
        "score": 0.4213 - n / 100,
        "reason_codes": ["moment_deposit_maturing", "model_propensity"],
        "explanation": {
            "zh": "您的定期存款即将到期，且风险等级匹配。",
            "en": "Your deposit is maturing and the product matches your risk level.",
        },
    }


BODY: bytes = json.dumps(
    {
        "decision_id": "dec_01JD6Y8Q8K3V4Y8X6W2T0S9R7P",
        "mode": "personalised",
        "experiment": None,
        "model_version": "lightfm-20261123T000000Z",
        "bundles": [_bundle(1), _bundle(2)],
        "reason_codes": [],
        "degraded_reasons": [],
    },
    ensure_ascii=False,
    separators=(",", ":"),
).encode()

app = FastAPI(title="decision benchmark floor", openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/floor")
async def floor() -> Response:
    return Response(content=BODY, media_type="application/json")


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
