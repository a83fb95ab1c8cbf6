"""Celery's side of the task benchmark (tests/src/bin/bench_tasks.rs runs it).

usage: python celery_noop.py REDIS_URL TASKS CONCURRENCY

Starts a Celery 5 worker (prefork pool, CONCURRENCY processes, Redis broker and result
backend), sends TASKS no-op tasks one after the other from this process, waits for every
result, and prints one JSON line: tasks per second from the first send to the last
result, and the median time from send to the task starting.
"""
import json
import os
import statistics
import subprocess
import sys
import time

from celery import Celery

URL = os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/2")
QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench")
app = Celery("celery_noop", broker=URL, backend=URL)
app.conf.update(result_expires=3600, worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@app.task(name="noop")
def noop():
    # The start time is the only work, so that send-to-start latency can be measured.
    return time.time()


def main():
    url, tasks, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    env = dict(os.environ, BENCH_CELERY_URL=url, BENCH_CELERY_QUEUE=QUEUE)
    here = os.path.dirname(os.path.abspath(__file__))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_noop", "worker", "-Q", QUEUE,
         "-c", str(concurrency), "--pool", "prefork", "-l", "warning", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
        cwd=here, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        app.conf.broker_url = url
        app.conf.result_backend = url
        deadline = time.time() + 60
        while not app.control.ping(timeout=0.5):
            if time.time() > deadline or worker.poll() is not None:
                sys.exit("celery worker did not start: " + worker.stderr.read().decode()[-2000:])
        # Warm up: the first task pays for pool start-up on both sides.
        noop.apply_async(queue=QUEUE).get(timeout=60)
        sent = []
        started = time.perf_counter()
        for _ in range(tasks):
            sent.append((time.time(), noop.apply_async(queue=QUEUE)))
        starts = [(r.get(timeout=600) - t) for t, r in sent]
        elapsed = time.perf_counter() - started
        print(json.dumps({
            "tasks": tasks,
            "seconds": elapsed,
            "tasks_per_s": tasks / elapsed,
            "median_start_latency_ms": statistics.median(starts) * 1000,
        }))
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


if __name__ == "__main__":
    main()
