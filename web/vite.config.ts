// The app is built into web/dist and served by `peerbridge serve` on the API's origin
// (server/src/webapp.rs). The SDK is the wasm package web-sdk/build makes.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const sdk = fileURLToPath(new URL("../web-sdk/pkg/peerbridge_web.js", import.meta.url));

export default defineConfig({
  resolve: { alias: { "peerbridge-web": sdk } },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: false },
  server: { fs: { allow: [".", "../web-sdk/pkg"] } },
});
