function lineTotal(item) {
  return item.price * item.quantity;
}

document.getElementById("plain").addEventListener("click", function () {
  lineTotal(undefined);
});

document.getElementById("rejection").addEventListener("click", function () {
  Promise.reject({code: 7, reason: "out of stock"});
});
