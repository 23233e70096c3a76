import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'dashboard/dist/**', 'node_modules/**', 'data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'read the environment only in src/main.ts' },
      ],
    },
  },
  {
    // The dashboard runs in the browser.
    files: ['dashboard/src/**'],
    languageOptions: {
      globals: {
        document: 'readonly',
        location: 'readonly',
        sessionStorage: 'readonly',
        fetch: 'readonly',
        URL: 'readonly',
        URLSearchParams: 'readonly',
        WebSocket: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
      },
    },
  },
  {
    files: [
      'src/main.ts',
      'src/cli/**',
      'bench/**',
      'test/**',
      'bin/**',
      'scripts/**',
      'clients/typescript/examples/**',
    ],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // The image's health check: plain JavaScript run by Node in the container.
    files: ['docker/**'],
    languageOptions: { globals: { fetch: 'readonly', AbortSignal: 'readonly' } },
    rules: { 'no-restricted-properties': 'off' },
  },
)
