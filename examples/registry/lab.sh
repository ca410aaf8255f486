#!/bin/bash
# Lab 1, a private registry, with dockyard in place of docker:
#   run the registry in a container on port 5000; tag nginx:alpine as 127.0.0.1:5000/nginx:alpine,
#   push it, remove it locally, pull it back; list the catalog and the tags with curl.
# Then the registry's storage on a named volume outlives removing and recreating its container.
#
#   examples/registry/lab.sh [up|down]       (needs `make images`; REGISTRY_PORT, default 5000)
set -euo pipefail
. "$(dirname "$0")/../lib/lab.sh"
PORT=${REGISTRY_PORT:-5000}
DATA=registry-data   # the named volume of the second part
IMAGE=127.0.0.1:$PORT/nginx:alpine

down() {
	quiet rm -f registry lab-registry >/dev/null 2>&1 || true
	quiet rmi "$IMAGE" >/dev/null 2>&1 || true
	quiet volume rm "$DATA" >/dev/null 2>&1 || true
}

up() {
	need_image registry
	need_image nginx:alpine
	down

	title "A registry in a container, published on port $PORT"
	bold "\$ dockyard run -d -p $PORT:5000 --name lab-registry registry"
	local id
	id=$(quiet run -d -p "$PORT:5000" --name lab-registry registry) || fail "dockyard run registry"
	echo "$id"
	wait_for "the registry on 127.0.0.1:$PORT" 30 curl -sf "http://127.0.0.1:$PORT/v2/"
	dockyard ps --filter name=lab-registry

	title "Tag, push, remove, pull back"
	dockyard tag nginx:alpine "$IMAGE"
	dockyard push "$IMAGE" | expect "digest: sha256:" "push reported the manifest digest"
	dockyard rmi "$IMAGE" | expect "Untagged: $IMAGE" "rmi removed the tag"
	quiet image inspect "$IMAGE" >/dev/null 2>&1 && fail "$IMAGE is still here after rmi"
	dockyard pull "$IMAGE" | expect "Downloaded newer image for $IMAGE" "pulled it back"
	dockyard images 127.0.0.1:$PORT/nginx

	title "What the registry holds"
	show_curl "127.1:$PORT/v2/_catalog" | expect '"nginx"' "the catalog lists nginx"
	show_curl "127.1:$PORT/v2/nginx/tags/list" | expect '"alpine"' "nginx has the tag alpine"

	title "Storage on a volume outlives the container"
	dockyard rm -f lab-registry >/dev/null
	dockyard run -d -p "$PORT:5000" --name registry -v "$DATA:/var/lib/registry" registry >/dev/null
	wait_for "the registry" 30 curl -sf "http://127.0.0.1:$PORT/v2/"
	dockyard push "$IMAGE" >/dev/null
	dockyard rm -f registry
	dockyard run -d -p "$PORT:5000" --name registry -v "$DATA:/var/lib/registry" registry >/dev/null
	wait_for "the recreated registry" 30 curl -sf "http://127.0.0.1:$PORT/v2/"
	show_curl "127.1:$PORT/v2/nginx/tags/list" | expect '"alpine"' "the recreated registry still has nginx:alpine"
	dockyard rmi "$IMAGE" >/dev/null
	dockyard pull "$IMAGE" | expect "Downloaded newer image for $IMAGE" "pulled from the recreated registry"

	title "Done"
	echo "The registry runs as container 'registry' on 127.0.0.1:$PORT (storage: volume $DATA)."
	echo "Remove it all with: $0 down"
}

case "${1:-up}" in
	up) up ;;
	down) down; echo "registry lab removed" ;;
	*) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
