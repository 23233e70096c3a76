// Vite imports CSS as a side effect.
declare module '*.css'
