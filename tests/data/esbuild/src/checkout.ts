interface Item { name: string; price: number }

export function lineTotal(item: Item, quantity: number): number {
  return item.price * quantity;
}

export function checkout(items: Item[]): number {
  let total = 0;
  for (const item of items) {
    total += lineTotal(item, 2);
  }
  return total;
}
