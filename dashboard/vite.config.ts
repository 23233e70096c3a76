import preact from '@preact/preset-vite'
import { defineConfig } from 'vite'

// The dashboard is a static bundle served by `warden dashboard` (src/dashboard/server.ts), which
// also proxies /api/* to the gateway. `npm ci` builds it (the `prepare` script).
export default defineConfig({
  root: import.meta.dirname,
  plugins: [preact()],
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 600 },
  logLevel: 'warn',
})
