"""The reference of ../shared/PERF_NOTES.md: a trivial FastAPI POST /send with a per-instance lock.

Run by the benches as its own uvicorn process so that every figure has a same-run baseline.
"""

import asyncio
import os
from collections import defaultdict

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


@app.get("/health")
async def health() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@app.post("/api/session-manager/sessions/{instance_id}/send")
async def send(instance_id: str, request: Request) -> Response:
    body = await request.body()
    async with locks[instance_id]:
        return Response(b'{"success":true,"data":' + body + b"}", media_type="application/json")


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
