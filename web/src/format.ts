// Dates and times in the reader's language (the app's, not the browser's).
import i18n from "./i18n";

const LOCALES: Record<string, string> = { nb: "nb-NO", nn: "nn-NO", en: "en-GB" };

export function when(iso: string | number): string {
  return new Date(iso).toLocaleString(LOCALES[i18n.language] ?? "nb-NO", {
    dateStyle: "medium",
    timeStyle: "short",
  });
}

export function today(): string {
  return new Date().toISOString().slice(0, 10);
}
