#!/usr/bin/env python3
"""oci.py ROOTFS NAME OUT.tar [ENTRYPOINT...]: an OCI image archive of ROOTFS (one layer),
named NAME (io.containerd.image.name), for `ctr images import`. Deterministic: fixed mtimes."""
import gzip, hashlib, io, json, sys, tarfile, os

rootfs, name, out = sys.argv[1:4]
entrypoint = sys.argv[4:]

def layer_tar():
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for base, dirs, files in os.walk(rootfs):
            dirs.sort()
            for entry in sorted(dirs) + sorted(files):
                path = os.path.join(base, entry)
                info = tar.gettarinfo(path, arcname=os.path.relpath(path, rootfs))
                info.mtime = 0
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return raw.getvalue()

def blob(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return digest, data

uncompressed = layer_tar()
diff_id = "sha256:" + hashlib.sha256(uncompressed).hexdigest()
gz = io.BytesIO()
with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
    g.write(uncompressed)
layer_digest, layer = blob(gz.getvalue())
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Entrypoint": entrypoint or None, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
}, sort_keys=True).encode()
config_digest, config = blob(config)
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": len(layer)}],
}, sort_keys=True).encode()
manifest_digest, manifest = blob(manifest)
index = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": len(manifest),
                   "platform": {"architecture": "amd64", "os": "linux"},
                   "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}],
}, sort_keys=True).encode()
with tarfile.open(out, "w") as tar:
    def add(path, data):
        info = tarfile.TarInfo(path); info.size = len(data); info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add("index.json", index)
    for d, data in [(layer_digest, layer), (config_digest, config), (manifest_digest, manifest)]:
        add("blobs/sha256/" + d.split(":")[1], data)
print(out, manifest_digest)
