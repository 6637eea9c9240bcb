// Loads the latency diagnostics (diag.js) only for ?diag=1. A file of its own, not an inline
// script: the pages' Content-Security-Policy (script-src 'self') runs no inline code.
if (new URLSearchParams(location.search).get('diag') === '1') import('./diag.js');
