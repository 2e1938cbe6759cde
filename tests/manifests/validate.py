"""Validates the documents of a `kubectl kustomize` rendering (stdin) against the Kubernetes
schemas (kubernetes-validate, strict: unknown fields fail) and the kinds Kubernetes does not know
(OpenShift, prometheus-operator, cert-manager) against the minimal schemas in schemas/. Prints one line per
document; exits 1 when a document fails or has a kind no schema covers."""

import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = "1.32.0"
OWN = {
    ("security.openshift.io/v1", "SecurityContextConstraints"): "securitycontextconstraints.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
    ("cert-manager.io/v1", "Certificate"): "certificate.json",
    ("cert-manager.io/v1", "Issuer"): "issuer.json",
}
schemas = pathlib.Path(__file__).resolve().parent / "schemas"
failed = 0
docs = [d for d in yaml.safe_load_all(sys.stdin) if d is not None]
if not docs:
    print("FAIL no documents on stdin")
    sys.exit(1)
for doc in docs:
    key = (doc.get("apiVersion"), doc.get("kind"))
    name = f"{key[1]}/{doc.get('metadata', {}).get('name')}"
    try:
        if key in OWN:
            schema = json.loads((schemas / OWN[key]).read_text())
            jsonschema.validate(doc, schema)
            print(f"ok   {name} (own schema {OWN[key]})")
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            print(f"ok   {name} (kubernetes {K8S_VERSION}, strict)")
    except kubernetes_validate.SchemaNotFoundError:
        failed += 1
        print(f"FAIL {name}: no schema for {key[0]} {key[1]}")
    except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as e:
        failed += 1
        err = getattr(e, "caused_by", e)
        path = "/".join(str(p) for p in getattr(err, "absolute_path", []))
        print(f"FAIL {name}: {path}: {getattr(err, 'message', err)}")
sys.exit(1 if failed else 0)
