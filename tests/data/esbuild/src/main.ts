import { checkout } from "./checkout";

document.getElementById("buy")!.addEventListener("click", () => {
  checkout([{ name: "pen", price: 2 }, undefined as any]);
});
