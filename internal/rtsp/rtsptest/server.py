# A camera stand-in for internal/rtsp's tests: GStreamer's RTSP server with a live test
# pattern (H.264 or H.265) and/or a tone (PCMA or AAC), optionally behind Basic or Digest auth.
# Usage: server.py CONFIG_JSON, or server.py --check CONFIG_JSON (exit 3 naming what is missing).
import json
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

check = sys.argv[1] == "--check"
cfg = json.loads(sys.argv[-1])
Gst.init(None)

VIDEO = {
    "h264": (["x264enc", "rtph264pay"],
             "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={kbps} "
             "! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay{n} pt=96"),
    "h265": (["x265enc", "rtph265pay"],
             "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={kbps} "
             "! rtph265pay name=pay{n} pt=96"),
}
AUDIO = {
    # 160 samples a buffer and a 20 ms ptime: one frame every 20 ms, as cameras send.
    "pcma": (["alawenc", "rtppcmapay"],
             "audiotestsrc is-live=true samplesperbuffer=160 ! audio/x-raw,rate=8000,channels=1 "
             "! alawenc ! rtppcmapay name=pay{n} pt=8 min-ptime=20000000 max-ptime=20000000"),
    "aac": (["avenc_aac", "rtpmp4gpay"],
            "audiotestsrc is-live=true samplesperbuffer=1024 ! audioconvert ! audioresample "
            "! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! rtpmp4gpay name=pay{n} pt=97"),
}

parts, need, n = [], ["videotestsrc", "audiotestsrc"], 0
if cfg.get("video"):
    elems, launch = VIDEO[cfg["video"]]
    need += elems
    parts.append("videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},framerate={fps}/1 ! ".format(**cfg)
                 + launch.format(n=n, **cfg))
    n += 1
if cfg.get("audio"):
    elems, launch = AUDIO[cfg["audio"]]
    need += elems
    parts.append(launch.format(n=n, **cfg))

missing = [e for e in need if Gst.ElementFactory.find(e) is None]
if check:
    if missing:
        print("missing GStreamer elements: " + " ".join(missing))
        sys.exit(3)
    sys.exit(0)

server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(str(cfg["port"]))
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch("( " + " ".join(parts) + " )")

if cfg.get("user"):
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "user")
    if cfg.get("digest"):
        auth.add_digest(cfg["user"], cfg["password"], token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    else:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(cfg["user"], cfg["password"]), token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_permission_for_role("user", "media.factory.access", True)
    perms.add_permission_for_role("user", "media.factory.construct", True)
    factory.set_permissions(perms)

if cfg.get("session_timeout"):
    def on_client(_server, client):
        client.connect("new-session", lambda _c, session: session.set_timeout(cfg["session_timeout"]))
    server.connect("client-connected", on_client)

server.get_mount_points().add_factory(cfg["path"], factory)
if server.attach(None) == 0:
    print("cannot listen on port %d" % cfg["port"], flush=True)
    sys.exit(1)
print("listening on 127.0.0.1:%d%s" % (cfg["port"], cfg["path"]), flush=True)
GLib.MainLoop().run()
