// node ifft.cjs IN OUT : IN = n affine G1 points (x,y little-endian Montgomery, 64 bytes each, halo2 raw format)
// writes OUT = G1.ifft(IN) in the same format, prints the FFT root of unity (normal form, decimal) as JSON.
const fs = require("fs");
const { buildBn128 } = require("ffjavascript");
(async () => {
  const [inp, out] = process.argv.slice(2);
  const curve = await buildBn128(true);
  const buf = new Uint8Array(fs.readFileSync(inp));
  const n = buf.length / 64;
  // root used by the FFT: fft of the polynomial X gives [w^0, w^1, ...]
  const Fr = curve.Fr;
  const coefs = new Uint8Array(n * 32);
  coefs.set(Fr.e(1), 32);  // Fr.e gives Montgomery bytes
  const ev = await Fr.fft(coefs);
  const w = Fr.toObject(ev.slice(32, 64));
  const res = await curve.G1.ifft(buf, "affine", "affine");
  fs.writeFileSync(out, Buffer.from(res.buffer ? new Uint8Array(res.buffer, res.byteOffset, res.byteLength) : res));
  console.log(JSON.stringify({ n, w: w.toString() }));
  await curve.terminate();
})().catch((e) => { console.error(e); process.exit(1); });
