import { checkout, Item } from "./checkout";

document.getElementById("bundled")!.addEventListener("click", () => {
  checkout([{ name: "pen", price: 2 }, undefined as unknown as Item]);
});
