/**
 * Build step after tsc: copies the files the compiled code reads at run time (the dashboard's
 * HTML, JS, CSS and icon) from src/ into dist/ (or the folder given as the first argument),
 * beside the modules that load them.
 */
import { cpSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const out = resolve(root, process.argv[2] ?? "dist");
const dirs = ["admin/dashboard"];

for (const dir of dirs) {
  const from = join(root, "src", dir);
  const to = join(out, dir);
  cpSync(from, to, { recursive: true });
  console.log(`copied ${readdirSync(from).length} files: src/${dir} -> ${to}`);
}
