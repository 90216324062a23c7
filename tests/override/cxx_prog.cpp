// cxx_prog.cpp -- a C++ workload for the override tests (cxx.sh).
//
// Heavy on operator new/delete through the standard containers: vectors that
// grow, strings of every length, std::map and std::unordered_map churn,
// shared_ptr graphs, over-aligned new, and threads that allocate and free
// each other's objects.  Prints deterministic checksums only, so the output
// is the same on any allocator.
//
// With NEAP_EXPECT set (cxx.sh sets it only in the preloaded run) it also
// checks that it really runs on neap: neap_owns, looked up with dlsym, must
// say yes to memory from operator new, new[], std::string and aligned new.
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

std::uint64_t rng_state = 88172645463325252ULL;
std::uint64_t rnd() {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    return h;
}
std::uint64_t mix(std::uint64_t h, const std::string &s) {
    for (unsigned char c : s) h = mix(h, c);
    return h;
}

struct alignas(256) Aligned {
    unsigned char bytes[512];
};

struct Node {
    int value;
    std::vector<std::shared_ptr<Node>> children;
    std::string name;
};

int check_neap() {
    const char *expect = std::getenv("NEAP_EXPECT");
    if (expect == nullptr) return 0;
    using owns_fn = int (*)(const void *);
    auto owns = reinterpret_cast<owns_fn>(dlsym(RTLD_DEFAULT, "neap_owns"));
    if (owns == nullptr) {
        std::fprintf(stderr, "neap_owns not found: the preload did not take effect\n");
        return 1;
    }
    int bad = 0;
    int *i = new int(5);
    char *a = new char[100000];
    std::string s(1000, 'x');
    Aligned *al = new Aligned();
    if (!owns(i)) { std::fprintf(stderr, "operator new: not neap's\n"); bad = 1; }
    if (!owns(a)) { std::fprintf(stderr, "operator new[]: not neap's\n"); bad = 1; }
    if (!owns(s.data())) { std::fprintf(stderr, "std::string: not neap's\n"); bad = 1; }
    if (!owns(al)) { std::fprintf(stderr, "aligned new: not neap's\n"); bad = 1; }
    if (reinterpret_cast<std::uintptr_t>(al) % 256 != 0) {
        std::fprintf(stderr, "aligned new: %p not 256-aligned\n", static_cast<void *>(al));
        bad = 1;
    }
    delete i;
    delete[] a;
    delete al;
    if (!bad) std::fprintf(stderr, "cxx_prog: running on neap\n");
    return bad;
}

std::uint64_t vectors() {
    std::uint64_t h = 1;
    for (int round = 0; round < 40; round++) {
        std::vector<std::vector<int>> vv;
        for (int i = 0; i < 2000; i++) {
            std::vector<int> v;
            int n = static_cast<int>(rnd() % 700);
            for (int k = 0; k < n; k++) v.push_back(k * i + round);
            vv.push_back(std::move(v));
        }
        std::sort(vv.begin(), vv.end(),
                  [](const std::vector<int> &x, const std::vector<int> &y) { return x.size() < y.size(); });
        for (const auto &v : vv) h = mix(h, v.size() + (v.empty() ? 0 : static_cast<unsigned>(v.back())));
    }
    // one big vector growing through every size tier
    std::vector<std::uint64_t> big;
    for (std::uint64_t i = 0; i < 3000000; i++) big.push_back(i * i);
    h = mix(h, big[2999999]);
    big.resize(10);
    big.shrink_to_fit();
    return mix(h, big.capacity());
}

std::uint64_t strings_and_maps() {
    std::uint64_t h = 2;
    std::map<std::string, std::string> m;
    std::unordered_map<std::uint64_t, std::string> u;
    for (int i = 0; i < 200000; i++) {
        std::string k = "key" + std::to_string(rnd() % 100000);
        std::string v(rnd() % 200, static_cast<char>('a' + i % 26));
        m[k] = v;
        u[rnd() % 50000] = k + v;
        if (i % 3 == 0) m.erase(m.begin());
        if (i % 5 == 0) u.erase(rnd() % 50000);
    }
    for (const auto &kv : m) h = mix(mix(h, kv.first), kv.second.size());
    std::uint64_t uh = 0;  // unordered: combine order-independently
    for (const auto &kv : u) uh += mix(kv.first, kv.second);
    std::string cat;
    for (int i = 0; i < 100000; i++) cat += std::to_string(i);
    return mix(mix(mix(h, uh), cat.size()), m.size() + u.size());
}

std::shared_ptr<Node> build(int depth, int &count) {
    auto n = std::make_shared<Node>();
    n->value = count++;
    n->name = "node" + std::to_string(n->value) + std::string(n->value % 64, '.');
    if (depth > 0)
        for (int i = 0; i < 4; i++) n->children.push_back(build(depth - 1, count));
    return n;
}
std::uint64_t walk(const std::shared_ptr<Node> &n) {
    std::uint64_t h = mix(static_cast<std::uint64_t>(n->value), n->name);
    for (const auto &c : n->children) h = mix(h, walk(c));
    return h;
}

std::uint64_t graphs() {
    std::uint64_t h = 3;
    for (int r = 0; r < 5; r++) {
        int count = 0;
        auto root = build(7, count);  // 21845 nodes
        h = mix(mix(h, walk(root)), count);
    }
    std::vector<Aligned *> al;
    for (int i = 0; i < 5000; i++) {
        al.push_back(new Aligned());
        al.back()->bytes[i % 512] = static_cast<unsigned char>(i);
        h = mix(h, reinterpret_cast<std::uintptr_t>(al.back()) % 256);  // 0 when aligned
    }
    for (auto *p : al) delete p;
    return h;
}

// threads that build strings and hand them to each other to free
std::uint64_t threads() {
    std::mutex lock;
    std::vector<std::string *> shared;
    std::uint64_t total = 0;
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; t++) {
        ts.emplace_back([t, &lock, &shared, &total] {
            std::uint64_t local = 0;
            for (int i = 0; i < 100000; i++) {
                auto *s = new std::string(static_cast<std::size_t>((i * 7 + t) % 300), 'z');
                std::string *other = nullptr;
                {
                    std::lock_guard<std::mutex> g(lock);
                    shared.push_back(s);
                    if (shared.size() > 64) {
                        other = shared.front();
                        shared.erase(shared.begin());
                    }
                }
                if (other) {
                    local += other->size();
                    delete other;
                }
            }
            std::lock_guard<std::mutex> g(lock);
            total += local;
        });
    }
    for (auto &t : ts) t.join();
    for (auto *s : shared) {
        total += s->size();
        delete s;
    }
    return total;
}

}  // namespace

int main() {
    if (check_neap() != 0) return 3;
    std::printf("vectors %llu\n", static_cast<unsigned long long>(vectors()));
    std::printf("strings %llu\n", static_cast<unsigned long long>(strings_and_maps()));
    std::printf("graphs %llu\n", static_cast<unsigned long long>(graphs()));
    std::printf("threads %llu\n", static_cast<unsigned long long>(threads()));
    return 0;
}
