import { openSafetensors } from "../../io/safetensors.ts";
for await (const e of Deno.readDir("tests/fixtures")) if (e.name.endsWith(".safetensors")) { const s = await openSafetensors("tests/fixtures/"+e.name); console.log(e.name, s.list().length); s.close(); }
for (const d of ["parity","llama-tiny-bf16","llama-tiny-meta","opt-tiny"]) for await (const e of Deno.readDir("tests/fixtures/"+d)) if (e.name.endsWith(".safetensors")) { const s = await openSafetensors(`tests/fixtures/${d}/`+e.name); console.log(d, e.name, s.list().length); s.close(); }
