#!/usr/bin/env bash
# Pack a rootfs directory as an OCI image archive that `ctr image import` and `podman load` take,
# so real clients can run the test rootfs without a registry.
#   scripts/clients/oci-image.sh ROOTFS OUT.tar NAME [CMD_JSON]
# NAME like docker.io/library/huskbox:latest; CMD_JSON the image's Cmd (default ["sh"]).
set -euo pipefail
rootfs=$1 out=$2 name=$3 cmd=${4:-'["sh"]'}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/blobs/sha256"
blob() { # file → prints "digest size", stores the blob
    local d s; d=$(sha256sum "$1" | cut -d' ' -f1); s=$(stat -c %s "$1")
    mv "$1" "$dir/blobs/sha256/$d"; echo "$d $s"
}
tar -C "$rootfs" --numeric-owner -cf "$dir/layer.tar" .
diff_id=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
gzip -n "$dir/layer.tar"
read -r layer layer_size < <(blob "$dir/layer.tar.gz")
cat >"$dir/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin:/sbin:/usr/bin"],"Cmd":$cmd,"WorkingDir":"/"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]}}
JSON
read -r cfg cfg_size < <(blob "$dir/config.json")
cat >"$dir/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$cfg","size":$cfg_size},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer","size":$layer_size}]}
JSON
read -r man man_size < <(blob "$dir/manifest.json")
echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
cat >"$dir/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "digest":"sha256:$man","size":$man_size,
 "annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"${name##*:}"}}]}
JSON
tar -C "$dir" -cf "$out" oci-layout index.json blobs
