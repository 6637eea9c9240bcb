// Package web holds the browser viewer the device serves at "/": index.html plays the device's
// live H.264 stream full-window, and player.js defines the <p2pcast-player> element that
// negotiates it over the /ws signaling socket (or WHEP), reconnects by itself and shows an
// overlay with connection statistics. The hub serves hub.html at "/" instead: a device list
// (hub.js) that opens the same player in hub mode (/?device=ID). Nothing is built: the files are
// served as they are.
package web

import "embed"

// Files holds index.html and index.css, player.js and desktop.js (a desktop device's control
// channel), files.js (a recording device's files channel), events.js (detection events under the
// video), diag.js (the latency and audio/video sync
// diagnostics of /?diag=1), diag-when-asked.js that loads it and avsync-worklet.js (its
// AudioWorklet), hub.html, hub.css and hub.js, manage.html, manage.css and manage.js (the device's
// /manage) and admin.html and admin.js (the hub's /admin) at its root; the device
// serves it with http.FileServer(http.FS(web.Files)), the hub too but with hub.html at "/". The
// pages hold no inline style or script, so a Content-Security-Policy of 'self' lets them run.
//
//go:embed index.html index.css player.js events.js desktop.js files.js diag.js diag-when-asked.js avsync-worklet.js hub.html hub.css hub.js manage.html manage.css manage.js admin.html admin.js
var Files embed.FS
