// Driven by bench/bench_browser_first_answer.py: in one headless Chromium, alternately (1) builds an
// onnxruntime-web session from each ONNX file of MODELS and (2) opens the activity and asks the module
// as soon as the page is visible. Prints one JSON line with every measurement (ms).
const { chromium } = require("playwright-core");

(async () => {
  const base = process.env.BASE_URL, rounds = Number(process.env.ROUNDS), models = JSON.parse(process.env.MODELS);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: JSON.parse(process.env.CHROMIUM_ARGS) });
  const out = { sessions: Object.fromEntries(models.map((m) => [m, []])), firstAnswer: [], modelReady: [] };
  try {
    for (let round = 0; round < rounds; round += 1) {
      for (const model of models) {  // a fresh page each time: nothing compiled is reused
        const page = await browser.newPage();
        await page.goto(`${base}/activity/index.html?bench=1`);
        await page.locator("body[data-model=ready]").waitFor({ timeout: 180000 });
        out.sessions[model].push(await page.evaluate(async (url) => {
          const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
          const t0 = performance.now();
          await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "disabled" });
          return performance.now() - t0;
        }, model));
        await page.close();
      }
      const page = await browser.newPage();
      await page.goto(`${base}/activity/index.html`);
      await page.locator("body[data-state=ready]").waitFor({ timeout: 60000 });
      await page.locator("#ask").click();
      await page.locator("body[data-state=module-answered]").waitFor({ timeout: 180000 });
      const t = await page.evaluate(() => window.trmActivity.timings);
      out.firstAnswer.push(t.firstAnswer - t.visible);
      out.modelReady.push(t.modelReady - t.visible);
      await page.close();
    }
    console.log(JSON.stringify(out));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
