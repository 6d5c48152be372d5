"""What the Python test scripts share."""

import subprocess


def stop(process, grace=15):
    """Stops `process` with SIGTERM (the service's graceful shutdown), and kills
    it if it is still running after `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
