/**
 * Build step after tsc: copies the files the compiled code reads at run time (the dashboard's
 * HTML, JS, CSS and icon) from src/ into dist/, beside the modules that load them.
 */
import { cpSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const dirs = ["admin/dashboard"];

for (const dir of dirs) {
  const from = join(root, "src", dir);
  const to = join(root, "dist", dir);
  cpSync(from, to, { recursive: true });
  console.log(`copied ${readdirSync(from).length} files: src/${dir} -> dist/${dir}`);
}
