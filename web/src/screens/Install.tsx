// "Add to home screen" where the browser offers it (Chromium's beforeinstallprompt): the app
// then opens like any other, under its neutral name and icon.
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";

type InstallPrompt = Event & { prompt: () => Promise<void> };

export function Install() {
  const { t } = useTranslation();
  const [prompt, setPrompt] = useState<InstallPrompt | null>(null);

  useEffect(() => {
    const offer = (e: Event) => {
      e.preventDefault();
      setPrompt(e as InstallPrompt);
    };
    addEventListener("beforeinstallprompt", offer);
    return () => removeEventListener("beforeinstallprompt", offer);
  }, []);

  if (!prompt) return null;
  return (
    <button
      type="button"
      className="secondary"
      onClick={() => {
        void prompt.prompt();
        setPrompt(null);
      }}
    >
      {t("home.install")}
    </button>
  );
}
