// The home page's search: every word of the query (any case) in a post's title or text.
// Substrings, so Chinese words need no segmentation.
function searchPosts(posts, query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return [];
  return posts.filter(p => {
    const haystack = (p.title + " " + p.text).toLowerCase();
    return words.every(w => haystack.includes(w));
  });
}

if (typeof document !== "undefined") {
  const input = document.getElementById("search");
  const results = document.getElementById("results");
  input.addEventListener("input", () => {
    results.replaceChildren(...searchPosts(window.SEARCH_INDEX, input.value).map(p => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = p.url;
      link.textContent = p.title;
      item.append(p.date + " ", link);
      return item;
    }));
  });
} else {
  module.exports = { searchPosts };
}
