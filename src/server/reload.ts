/**
 * Watching the config file. Editors save by writing in place or by writing a temp file and
 * renaming it over the original (which replaces the inode a file watch holds), so both the file
 * and its folder are watched, and bursts of events are debounced into one reload.
 */
import { type FSWatcher, watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import type { Logger } from "../log.ts";

export function watchConfig(
  file: string,
  onChange: () => void,
  signal: AbortSignal,
  logger: Logger,
  debounceMs = 150,
): void {
  const path = resolve(file);
  const name = basename(path);
  let timer: NodeJS.Timeout | undefined;
  let fileWatcher: FSWatcher | undefined;
  const fire = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      // the inode may have been replaced: watch the new one
      rewatchFile();
      onChange();
    }, debounceMs);
  };
  const rewatchFile = () => {
    fileWatcher?.close();
    fileWatcher = undefined;
    try {
      fileWatcher = watch(path, { persistent: false }, fire);
      fileWatcher.on("error", () => {
        fileWatcher?.close();
        fileWatcher = undefined;
      });
    } catch {
      // the file is gone for now (mid-rename); the folder watch will see it come back
    }
  };
  let dirWatcher: FSWatcher | undefined;
  try {
    dirWatcher = watch(dirname(path), { persistent: false }, (_event, changed) => {
      if (changed === null || changed === name) fire();
    });
    dirWatcher.on("error", (err) => logger.warn({ err }, "config folder watch failed"));
  } catch (err) {
    logger.warn({ err, file: path }, "cannot watch the config folder; reload with SIGHUP");
  }
  rewatchFile();
  signal.addEventListener(
    "abort",
    () => {
      clearTimeout(timer);
      fileWatcher?.close();
      dirWatcher?.close();
    },
    { once: true },
  );
}

/**
 * Reloads on a change of `file` and on SIGHUP; without a file (the demo) SIGHUP is only logged.
 * The file watch ends when `signal` aborts.
 */
export function reloadOnChange(
  file: string | undefined,
  reload: (file: string) => void,
  signal: AbortSignal,
  logger: Logger,
): void {
  if (file === undefined) {
    process.on("SIGHUP", () => logger.info("SIGHUP ignored: the demo has no configuration file"));
    return;
  }
  watchConfig(file, () => reload(file), signal, logger);
  process.on("SIGHUP", () => {
    logger.info("SIGHUP: reloading the configuration");
    reload(file);
  });
}
