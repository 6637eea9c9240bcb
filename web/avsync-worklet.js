// avsync-worklet.js: the AudioWorklet behind diag.js's audio/video sync measurement (?diag=1).
//
// p2pcast's test tone (`p2pcast device --audio-in testtone`) is a 1 kHz sine at −6 dBFS (peak
// 0.5) for 100 ms from every whole second of the capture clock, and silence otherwise. This
// processor finds each beep's onset to the sample: the first sample whose magnitude reaches
// ONSET_LEVEL after at least QUIET_S of samples all below QUIET_LEVEL. It posts
// { frame, peak, rise } for each: `frame` the onset's sample frame on the context's timeline
// (currentFrame + index: context time = frame / sampleRate), `peak` the highest magnitude in the
// quiet run before it, past its first TAIL_S (how silent the silence was, not counting the
// previous beep's fading tail) and `rise` how many samples before the onset
// the signal first rose above QUIET_LEVEL (the codec's pre-echo smears the edge a little).
// A file of its own because the pages' Content-Security-Policy (script-src 'self') allows no
// blob: or data: modules.

const QUIET_LEVEL = 0.02; // −34 dBFS: Opus's residue in the silence stays below it
const ONSET_LEVEL = 0.1; // −20 dBFS: a fifth of the beep's peak, reached 0.03 ms after phase 0
const QUIET_S = 0.5;
const TAIL_S = 0.1;
const RISE_MAX = 480; // how far back (samples) a rise before the onset is looked for: 10 ms at 48 kHz

class OnsetProcessor extends AudioWorkletProcessor {
  #quiet = 0; // samples in a row below QUIET_LEVEL
  #quietPeak = 0; // the highest magnitude among them
  #armed = false; // QUIET_S of quiet seen: the next crossing is an onset
  #since = -1; // frame of the first sample above QUIET_LEVEL since the quiet run ended
  #need = Math.round(QUIET_S * sampleRate);
  #tail = Math.round(TAIL_S * sampleRate);

  process(inputs) {
    const ch = inputs[0]?.[0];
    if (!ch) return true; // no input connected yet (or the track ended): keep listening
    for (let i = 0; i < ch.length; i++) {
      const v = Math.abs(ch[i]);
      if (v < QUIET_LEVEL) {
        if (this.#quiet === 0) this.#quietPeak = 0;
        this.#quiet++;
        if (this.#quiet > this.#tail) this.#quietPeak = Math.max(this.#quietPeak, v);
        if (this.#quiet >= this.#need) this.#armed = true;
        continue;
      }
      const frame = currentFrame + i;
      if (this.#quiet > 0 || this.#since < 0) this.#since = frame;
      this.#quiet = 0;
      if (this.#armed && v >= ONSET_LEVEL) {
        this.#armed = false;
        const rise = frame - this.#since;
        this.port.postMessage({ frame, peak: this.#quietPeak, rise: rise <= RISE_MAX ? rise : null });
      }
    }
    return true;
  }
}

registerProcessor('p2pcast-onset', OnsetProcessor);
