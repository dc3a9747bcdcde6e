import js from "@eslint/js";
import globals from "globals";
import jsxA11y from "eslint-plugin-jsx-a11y";
import reactHooks from "eslint-plugin-react-hooks";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist", "node_modules", "test-results"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  jsxA11y.flatConfigs.strict,
  {
    files: ["**/*.{ts,tsx}"],
    languageOptions: { globals: globals.browser },
    plugins: { "react-hooks": reactHooks },
    rules: {
      ...reactHooks.configs.recommended.rules,
      // Screens load from the SDK in effects and set state after the await; the rule cannot
      // tell that from a synchronous setState.
      "react-hooks/set-state-in-effect": "off",
    },
  },
  // The service worker.
  { files: ["public/sw.js"], languageOptions: { globals: globals.serviceworker } },
  // Tests run in Node and hand functions to the page.
  {
    files: ["test/**/*.mjs", "*.config.*"],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
);
