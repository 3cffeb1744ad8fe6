import { Item } from "./checkout";

export function discounted(item: Item, rate: number): number {
  return item.price * (1 - rate);
}
