import * as Sentry from "@sentry/browser";
import { Item } from "./checkout";
import { discounted } from "./discount";

declare global {
  interface Window { SENTRY_DSN: string; RELEASE: string }
}

Sentry.init({ dsn: window.SENTRY_DSN, release: window.RELEASE });

document.getElementById("sentry")!.addEventListener("click", () => {
  discounted(undefined as unknown as Item, 0.1);
});
