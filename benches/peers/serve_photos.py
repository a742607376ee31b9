"""FastAPI + uvicorn peer of the Rust tool's HTTP server: the same face detection and gender
classification as sort_photos.py (imported from it), one photo per request.

    /work/venvs/peers/bin/python benches/peers/serve_photos.py --port 8080 \\
        --detector ../shared/models/detect/yunet-n-dynamic.onnx \\
        --model ../shared/models/gender/dlib-cydral-gender-v1.opset13.onnx [--workers 2] [--threads 1]

    curl -s --data-binary @photo.jpg http://127.0.0.1:8080/v1/classify

Endpoints, on 127.0.0.1 only:
- GET /healthz -> 200 {"status": "ok"}
- POST /v1/classify, body = the raw image bytes (any content type) -> 200 {"width": W, "height": H,
  "faces": [{"box": [x, y, w, h], "score": s, "label": "female"|"male",
  "probabilities": {"female": p, "male": 1 - p}}]}; a body that does not decode -> 400 {"error": ...}.
  A small square image (a face crop) is classified whole: one face, box = the image, score 1.

As a typical Python deployment does it: one uvicorn process, the model and detectors loaded once at
startup, inference in a plain `def` endpoint so that FastAPI runs it in its (anyio) thread pool. That
pool is capped at --workers threads (default 2; anyio's default is 40), each with a YuNet detector of
its own (FaceDetectorYN is not thread safe; the onnxruntime session is shared). --threads (default 1)
is onnxruntime's intra-op thread count and cv2.setNumThreads. Access logging is off.

Prints exactly one line to stdout, `listening on http://127.0.0.1:PORT`, once the socket accepts
connections (with --port 0, the port the system picked). SIGTERM: a graceful shutdown, exit status 0.
"""
import argparse
import contextlib
import signal

import anyio.to_thread
import cv2
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from sort_photos import FaceGender, decode


def create_app(detector, model, workers, threads):
    state = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        anyio.to_thread.current_default_thread_limiter().total_tokens = workers
        state["model"] = FaceGender(detector, model, threads, detectors=workers)
        yield

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    async def raw_body(request: Request) -> bytes:
        return await request.body()

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.post("/v1/classify")
    def classify(body: bytes = Depends(raw_body)):
        try:
            img = decode(body)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        faces = state["model"].classify(img)
        return {
            "width": img.shape[1],
            "height": img.shape[0],
            "faces": [{
                "box": f["box"],
                "score": f["score"],
                "label": "female" if f["female"] >= 0.5 else "male",
                "probabilities": {"female": f["female"], "male": 1 - f["female"]},
            } for f in faces],
        }

    return app


class Server(uvicorn.Server):
    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            port = self.servers[0].sockets[0].getsockname()[1]
            print(f"listening on http://127.0.0.1:{port}", flush=True)

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        # uvicorn re-raises SIGTERM once its graceful shutdown is done (exit status 143); a bench
        # harness stopping the server wants 0.
        if sig == signal.SIGTERM and sig in getattr(self, "_captured_signals", []):
            self._captured_signals.remove(sig)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--detector", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV 5 engine warnings
    app = create_app(a.detector, a.model, a.workers, a.threads)
    config = uvicorn.Config(app, host="127.0.0.1", port=a.port, log_level="warning",
                            access_log=False, lifespan="on")
    Server(config).run()


if __name__ == "__main__":
    main()
