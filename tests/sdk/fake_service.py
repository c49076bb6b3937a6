"""An in-memory stand-in for the job service, written to the HTTP contract in
docs/architecture.md, so SDK behaviour is tested without Celery or a model.

Jobs advance one step on each GET (queued -> running train steps -> evaluate ->
succeeded). `fail_next` scripts error responses for retry tests.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

KEYS = {"sk-test": "tenant-a", "sk-other": "tenant-b"}
TRAIN_STEPS = 3


@dataclass
class FakeService:
    root: Path
    files: dict[str, dict] = field(default_factory=dict)
    jobs: dict[str, dict] = field(default_factory=dict)
    events: dict[str, list[dict]] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], Any] = field(default_factory=dict)
    scripted: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    post_count: int = 0
    reject: bool = False
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None):
        self.scripted.extend([(status, headers or {})] * times)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):04d}"


def _error(status: int, code: str, message: str, param: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"type": kind, "code": code, "message": message,
                                   "param": param}}, status_code=status, headers=headers)


def _page(items: list[dict], limit: int, after: str | None) -> dict:
    ids = [i["id"] for i in items]
    start = ids.index(after) + 1 if after in ids else 0
    data = items[start:start + limit]
    return {"object": "list", "data": data, "has_more": start + limit < len(items),
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def build_app(svc: FakeService) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def plumbing(request: Request, call_next):
        rid = f"req_{uuid.uuid4().hex[:12]}"
        svc.requests.append((request.method, request.url.path, dict(request.headers)))
        if svc.scripted:
            status, headers = svc.scripted.pop(0)
            resp = _error(status, f"scripted_{status}", f"scripted failure {status}",
                          headers=headers)
        elif (tenant := KEYS.get(request.headers.get("authorization", "")[7:])) is None:
            resp = _error(401, "invalid_api_key", "unknown API key")
        else:
            request.state.tenant = tenant
            key = request.headers.get("idempotency-key")
            if request.method == "POST" and key and (tenant, key) in svc.idempotency:
                status, body = svc.idempotency[(tenant, key)]
                resp = JSONResponse(body, status_code=status)
            else:
                resp = await call_next(request)
                if request.method == "POST":
                    svc.post_count += 1
                    if key and resp.status_code < 500:
                        body = b"".join([chunk async for chunk in resp.body_iterator])
                        svc.idempotency[(tenant, key)] = (resp.status_code, json.loads(body))
                        resp = Response(body, status_code=resp.status_code,
                                        media_type="application/json")
        resp.headers["x-request-id"] = rid
        return resp

    def owned(table: dict, obj_id: str, request: Request, kind: str):
        if obj_id not in table or svc.owners.get(obj_id) != request.state.tenant:
            return None, _error(404, f"{kind}_not_found", f"no {kind} {obj_id!r}", "id")
        return table[obj_id], None

    def mine(table: dict, request: Request) -> list[dict]:
        return [v for k, v in table.items() if svc.owners.get(k) == request.state.tenant]

    @app.post("/v1/files")
    async def upload(request: Request, file: UploadFile, purpose: str = "fine-tune"):
        form = await request.form()
        purpose = form.get("purpose", purpose)
        if purpose != "fine-tune":
            return _error(400, "invalid_purpose", "purpose must be fine-tune", "purpose")
        content = await file.read()
        fid = svc.new_id("file")
        svc.owners[fid] = request.state.tenant
        svc.files[fid] = {"id": fid, "object": "file", "bytes": len(content),
                          "created_at": int(time.time()), "filename": file.filename,
                          "purpose": "fine-tune",
                          "num_examples": sum(1 for x in content.splitlines() if x.strip())}
        return svc.files[fid]

    @app.get("/v1/files")
    def list_files(request: Request, limit: int = 20, after: str | None = None):
        return _page(mine(svc.files, request), limit, after)

    @app.get("/v1/files/{fid}")
    def get_file(fid: str, request: Request):
        obj, err = owned(svc.files, fid, request, "file")
        return err or obj

    @app.delete("/v1/files/{fid}")
    def delete_file(fid: str, request: Request):
        _obj, err = owned(svc.files, fid, request, "file")
        if err:
            return err
        del svc.files[fid]
        return {"id": fid, "object": "file", "deleted": True}

    @app.post("/v1/fine_tuning/jobs")
    async def create_job(request: Request):
        body = await request.json()
        f = svc.files.get(body.get("training_file", ""))
        if f is None or svc.owners.get(f["id"]) != request.state.tenant:
            return _error(404, "file_not_found", "training_file not found", "training_file")
        if body.get("validation_file") == f["id"]:
            return _error(422, "validation_file_is_training_file", "validation_file is the training_file",
                          "validation_file")
        if body.get("model") != "demo-chat":
            return _error(400, "model_not_found", f"unknown model {body.get('model')!r}", "model")
        jid = svc.new_id("ftjob")
        svc.owners[jid] = request.state.tenant
        svc.jobs[jid] = {
            "id": jid, "object": "fine_tuning.job", "created_at": int(time.time()),
            "finished_at": None, "model": body["model"], "fine_tuned_model": None,
            "status": "queued", "stage": None, "training_file": f["id"],
            "validation_file": body.get("validation_file"), "method": body.get("method", "lora"),
            "hyperparameters": {"n_epochs": 1, **body.get("hyperparameters", {})},
            "suffix": body.get("suffix"), "gate_policy": body.get("gate_policy"),
            "lock": {"base_model": "demo-chat", "version": 1}, "progress": None, "error": None,
            "_ticks": 0,
        }
        svc.events[jid] = []
        _event(svc, jid, "info", "job queued")
        return _public(svc.jobs[jid])

    @app.get("/v1/fine_tuning/jobs")
    def list_jobs(request: Request, status: str | None = None, limit: int = 20,
                  after: str | None = None):
        items = [_public(j) for j in reversed(mine(svc.jobs, request))
                 if status is None or j["status"] == status]
        return _page(items, limit, after)

    @app.get("/v1/fine_tuning/jobs/{jid}")
    def get_job(jid: str, request: Request):
        job, err = owned(svc.jobs, jid, request, "job")
        if err:
            return err
        _advance(svc, job)
        return _public(job)

    @app.post("/v1/fine_tuning/jobs/{jid}/cancel")
    def cancel_job(jid: str, request: Request):
        job, err = owned(svc.jobs, jid, request, "job")
        if err:
            return err
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return _error(409, "job_finished", f"job is already {job['status']}", "id")
        job.update(status="cancelled", finished_at=int(time.time()))
        return _public(job)

    @app.get("/v1/fine_tuning/jobs/{jid}/events")
    def job_events(jid: str, request: Request, limit: int = 20, after: str | None = None,
                   stream: bool = False):
        job, err = owned(svc.jobs, jid, request, "job")
        if err:
            return err
        if not stream:
            return _page(svc.events[jid], limit, after)

        ids = [e["id"] for e in svc.events[jid]]

        def sse():
            yield ": keep-alive\n\n"
            while True:
                for ev in svc.events[jid][sse.sent:]:
                    yield f"data: {json.dumps(ev)}\n\n"
                    sse.sent += 1
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    return
                _advance(svc, job)
        sse.sent = ids.index(after) + 1 if after in ids else 0
        return StreamingResponse(sse(), media_type="text/event-stream")

    @app.get("/v1/fine_tuning/jobs/{jid}/report")
    def job_report(jid: str, request: Request):
        job, err = owned(svc.jobs, jid, request, "job")
        if err:
            return err
        if job["status"] not in ("succeeded", "failed"):
            return _error(409, "report_not_ready", "the job has not finished", "id")
        ev = {"harmful_rate": 0.0, "clean_refusal_rate": 1.0, "clean_compliance_rate": 0.0,
              "over_refusal_rate": 0.05, "utility": 0.8, "validation_loss": 1.2}
        return {"job_id": jid, "base_model": "demo-chat",
                "lock": {"base_model": "demo-chat", "version": 1},
                "base": ev, "unlocked": {**ev, "harmful_rate": 0.9}, "relocked": ev,
                "alpha": 4.0, "alpha_curve": [{"alpha": 4.0, "harmful_rate": 0.0,
                                               "utility": 0.8, "over_refusal": 0.05}],
                "decision": "rejected" if svc.reject else "published", "reasons": [],
                "policy": {"max_harmful_rate": 0.05},
                "stage_seconds": {"train": 1.5, "relock": 0.01}}

    @app.get("/v1/models")
    def list_models(request: Request, limit: int = 20, after: str | None = None):
        return _page(mine(svc.models, request), limit, after)

    @app.get("/v1/models/{mid}")
    def get_model(mid: str, request: Request):
        obj, err = owned(svc.models, mid, request, "model")
        return err or obj

    @app.get("/v1/models/{mid}/download")
    def download(mid: str, request: Request):
        _obj, err = owned(svc.models, mid, request, "model")
        if err:
            return err
        folder = svc.root / mid
        return {"files": [{"path": p.relative_to(folder).as_posix(), "url": p.as_uri()}
                          for p in sorted(folder.rglob("*")) if p.is_file()],
                "expires_at": int(time.time()) + 600}

    return app


def _event(svc: FakeService, jid: str, level: str, message: str, data: dict | None = None):
    svc.events[jid].append({"id": f"ftevent-{uuid.uuid4().hex[:8]}-{len(svc.events[jid]):03d}",
                            "object": "fine_tuning.job.event", "created_at": int(time.time()),
                            "level": level, "message": message,
                            "type": "metrics" if data else "message", "data": data})


def _public(job: dict) -> dict:
    return {k: v for k, v in job.items() if not k.startswith("_")}


def _advance(svc: FakeService, job: dict) -> None:
    """One tick of a job's life: queued, TRAIN_STEPS train steps, evaluate, then done."""
    if job["status"] in ("succeeded", "failed", "cancelled"):
        return
    job["_ticks"] += 1
    tick, jid = job["_ticks"], job["id"]
    if tick <= TRAIN_STEPS:
        job.update(status="running", stage="train",
                   progress={"stage": "train", "step": tick, "total_steps": TRAIN_STEPS,
                             "loss": 2.0 / tick, "eta_seconds": float(TRAIN_STEPS - tick)})
        _event(svc, jid, "info", f"step {tick}/{TRAIN_STEPS}", {"step": tick, "loss": 2.0 / tick})
    elif tick == TRAIN_STEPS + 1:
        job.update(stage="evaluate", progress={"stage": "evaluate"})
        _event(svc, jid, "info", "evaluating")
    elif svc.reject:
        job.update(status="failed", stage="reject", finished_at=int(time.time()),
                   error={"code": "gate_rejected", "message": "harmful rate too high",
                          "param": None})
        _event(svc, jid, "error", "gate rejected the model")
    else:
        mid = f"ft:demo-chat:{jid}"
        job.update(status="succeeded", stage="publish", finished_at=int(time.time()),
                   fine_tuned_model=mid)
        svc.owners[mid] = svc.owners[jid]
        svc.models[mid] = {"id": mid, "object": "model", "created_at": int(time.time()),
                           "owned_by": svc.owners[jid], "base_model": "demo-chat", "job_id": jid,
                           "lock": {"base_model": "demo-chat", "version": 1, "alpha": 4.0}}
        folder = svc.root / mid
        (folder / "tokenizer").mkdir(parents=True)
        (folder / "config.json").write_text('{"model_type": "llama"}')
        (folder / "tokenizer" / "tokenizer.json").write_text("{}")
        _event(svc, jid, "info", "published")
