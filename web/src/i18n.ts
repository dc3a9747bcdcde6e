// Every string the app shows comes from a message catalogue (locales/*.json): bokmål by
// default, nynorsk and English selectable. The choice is kept on the device only.
import i18n from "i18next";
import { initReactI18next } from "react-i18next";
import en from "./locales/en.json";
import nb from "./locales/nb.json";
import nn from "./locales/nn.json";

export const LANGUAGES = ["nb", "nn", "en"] as const;
export type Language = (typeof LANGUAGES)[number];
const KEY = "pb.language";

function saved(): Language {
  const v = localStorage.getItem(KEY);
  return (LANGUAGES as readonly string[]).includes(v ?? "") ? (v as Language) : "nb";
}

export function setLanguage(lang: Language): void {
  localStorage.setItem(KEY, lang);
  void i18n.changeLanguage(lang);
  document.documentElement.lang = lang;
}

void i18n.use(initReactI18next).init({
  resources: { nb: { translation: nb }, nn: { translation: nn }, en: { translation: en } },
  lng: saved(),
  fallbackLng: "nb",
  interpolation: { escapeValue: false },
  returnNull: false,
});
document.documentElement.lang = saved();

export default i18n;
