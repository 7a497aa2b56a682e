"""LocalStack is healthy for this project once every ready.d script (the provisioning) has succeeded."""

import json
import sys
import urllib.request

with urllib.request.urlopen("http://localhost:4566/_localstack/init/ready", timeout=4) as response:
    status = json.load(response)
scripts = status.get("scripts") or []
sys.exit(0 if status.get("completed") and scripts and all(s["state"] == "SUCCESSFUL" for s in scripts) else 1)
