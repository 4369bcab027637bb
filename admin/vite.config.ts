import { fileURLToPath, URL } from 'node:url';
import tailwindcss from '@tailwindcss/vite';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Served by the gateway at /admin (Workers static assets / embedded in the native binary).
// `npm run dev` serves the UI on :5173 and forwards the admin API to a local gateway
// (GATEWAY_URL, default the `make dev` one on :8787).
const gateway = process.env.GATEWAY_URL ?? 'http://127.0.0.1:8787';

export default defineConfig({
  base: '/admin/',
  plugins: [react(), tailwindcss()],
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    host: '127.0.0.1',
    proxy: {
      '/admin/api': { target: gateway, changeOrigin: true },
    },
  },
});
