(()=>{function c(t,e){return t.price*e}function n(t){let e=0;for(let r of t)e+=c(r,2);return e}document.getElementById("buy").addEventListener("click",()=>{n([{name:"pen",price:2},void 0])});})();
//# sourceMappingURL=app.js.map
