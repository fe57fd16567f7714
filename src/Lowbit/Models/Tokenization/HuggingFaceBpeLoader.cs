using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Lowbit.Models.Tokenization;

/// <summary>A byte-level BPE tokenizer built from a <c>tokenizer.json</c>, with what Lowbit needs beside it.</summary>
/// <param name="TokenIds">Every token string (vocabulary and added tokens) to its id, to resolve bos/eos names.</param>
/// <param name="TemplateBosToken">The special token the post_processor's TemplateProcessing puts before a single
/// sequence (Llama 3's &lt;|begin_of_text|&gt;), or null.</param>
internal sealed record HuggingFaceBpe(ByteLevelBpeEncoder Encoder, TokenDecodeTable Table,
    IReadOnlyDictionary<string, int> TokenIds, string? TemplateBosToken);

/// <summary>
/// Reads a Hugging Face <c>tokenizer.json</c> holding a byte-level BPE model (Llama 3, Qwen2, SmolLM, GPT-2) into a
/// <see cref="ByteLevelBpeEncoder"/> over a Microsoft.ML.Tokenizers <see cref="BpeTokenizer"/>: model.vocab,
/// model.merges and model.ignore_merges, the pre_tokenizer (Split regexes with behavior Isolated, Digits, ByteLevel,
/// or a Sequence of them), the NFC normalizer, and added_tokens, which are matched in the raw text before
/// pre-tokenization as Hugging Face does. Anything else this reader does not understand is a NotSupportedException.
/// </summary>
internal static class HuggingFaceBpeLoader
{
    public const string FileName = "tokenizer.json";

    // GPT-2's split pattern, which ByteLevel applies when use_regex is true (tokenizers' byte_level.rs).
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public static HuggingFaceBpe Load(string path)
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(path));
        JsonElement root = doc.RootElement;
        JsonElement model = root.GetProperty("model");
        string type = model.TryGetProperty("type", out JsonElement t) ? t.GetString() ?? "" : "BPE";
        if (type != "BPE")
            throw new NotSupportedException($"{path}: model type \"{type}\"; Lowbit reads byte-level BPE tokenizer.json files only");
        if (model.TryGetProperty("byte_fallback", out JsonElement bf) && bf.ValueKind == JsonValueKind.True)
            throw new NotSupportedException($"{path}: a SentencePiece-style BPE (byte_fallback); load its tokenizer.model instead");

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (JsonProperty p in model.GetProperty("vocab").EnumerateObject())
            vocab[p.Name] = p.Value.GetInt32();
        var merges = new List<string>();
        foreach (JsonElement m in model.GetProperty("merges").EnumerateArray())
            merges.Add(m.ValueKind == JsonValueKind.Array ? $"{m[0].GetString()} {m[1].GetString()}" : m.GetString()!);

        var splits = new List<Regex>();
        bool byteLevel = false;
        if (root.TryGetProperty("pre_tokenizer", out JsonElement pre) && pre.ValueKind != JsonValueKind.Null)
            AddPreTokenizer(pre, splits, ref byteLevel, path);
        if (!byteLevel)
            throw new NotSupportedException($"{path}: the pre_tokenizer has no ByteLevel step; Lowbit reads byte-level BPE tokenizer.json files only");

        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        var special = new HashSet<int>();
        if (root.TryGetProperty("added_tokens", out JsonElement addedTokens))
        {
            foreach (JsonElement a in addedTokens.EnumerateArray())
            {
                string content = a.GetProperty("content").GetString()!;
                foreach (string option in (string[])["lstrip", "rstrip", "single_word"])
                    if (a.TryGetProperty(option, out JsonElement o) && o.ValueKind == JsonValueKind.True)
                        throw new NotSupportedException($"{path}: added token \"{content}\" sets {option}, which Lowbit does not implement");
                int id = a.GetProperty("id").GetInt32();
                added[content] = id;
                if (a.TryGetProperty("special", out JsonElement s) && s.ValueKind == JsonValueKind.True)
                    special.Add(id);
            }
        }

        // The encoder normalizes and pre-tokenizes itself and hands BpeTokenizer one piece at a time.
        var options = new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            UnknownToken = OptionalString(model, "unk_token"),
            ContinuingSubwordPrefix = OptionalString(model, "continuing_subword_prefix"),
            EndOfWordSuffix = OptionalString(model, "end_of_word_suffix"),
            FuseUnknownTokens = model.TryGetProperty("fuse_unk", out JsonElement fu) && fu.ValueKind == JsonValueKind.True,
        };

        var tokenIds = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        foreach ((string content, int id) in added)
            tokenIds[content] = id;
        bool ignoreMerges = model.TryGetProperty("ignore_merges", out JsonElement im) && im.ValueKind == JsonValueKind.True;
        var encoder = new ByteLevelBpeEncoder(BpeTokenizer.Create(options), ReadNormalizer(root, path),
            new HuggingFacePreTokenizer(added.Keys, splits), vocab, added, ignoreMerges);
        return new HuggingFaceBpe(encoder, BuildTable(vocab, added, special), tokenIds, TemplateBos(root));
    }

    private static void AddPreTokenizer(JsonElement pre, List<Regex> splits, ref bool byteLevel, string path)
    {
        string type = pre.GetProperty("type").GetString() ?? "";
        switch (type)
        {
            case "Sequence":
                foreach (JsonElement p in pre.GetProperty("pretokenizers").EnumerateArray())
                    AddPreTokenizer(p, splits, ref byteLevel, path);
                break;
            case "Split":
                string behavior = pre.GetProperty("behavior").GetString() ?? "";
                bool invert = pre.TryGetProperty("invert", out JsonElement inv) && inv.ValueKind == JsonValueKind.True;
                if (behavior != "Isolated" || invert)
                    throw new NotSupportedException($"{path}: Split pre-tokenizer with behavior {behavior}, invert {invert}; Lowbit supports Isolated, not inverted");
                JsonElement pattern = pre.GetProperty("pattern");
                splits.Add(pattern.TryGetProperty("Regex", out JsonElement r)
                    ? NewRegex(r.GetString()!)
                    : NewRegex(Regex.Escape(pattern.GetProperty("String").GetString()!)));
                break;
            case "Digits":
                bool individual = pre.TryGetProperty("individual_digits", out JsonElement d) && d.ValueKind == JsonValueKind.True;
                splits.Add(NewRegex(individual ? @"\p{N}" : @"\p{N}+"));
                break;
            case "ByteLevel":
                if (pre.TryGetProperty("add_prefix_space", out JsonElement aps) && aps.ValueKind == JsonValueKind.True)
                    throw new NotSupportedException($"{path}: ByteLevel pre-tokenizer with add_prefix_space; Lowbit supports false only");
                if (!pre.TryGetProperty("use_regex", out JsonElement ur) || ur.ValueKind == JsonValueKind.True)
                    splits.Add(NewRegex(Gpt2Pattern));
                byteLevel = true;
                break;
            default:
                throw new NotSupportedException($"{path}: pre-tokenizer type \"{type}\" is not supported");
        }
    }

    private static Regex NewRegex(string pattern) => new(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);

    private static Normalizer? ReadNormalizer(JsonElement root, string path)
    {
        if (!root.TryGetProperty("normalizer", out JsonElement n) || n.ValueKind == JsonValueKind.Null)
            return null;
        string type = n.GetProperty("type").GetString() ?? "";
        return type == "NFC" ? new NfcNormalizer() : throw new NotSupportedException($"{path}: normalizer type \"{type}\" is not supported");
    }

    private static string? OptionalString(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static TokenDecodeTable BuildTable(Dictionary<string, int> vocab, Dictionary<string, int> added, HashSet<int> special)
    {
        int count = 0;
        foreach (int id in vocab.Values.Concat(added.Values))
            count = Math.Max(count, id + 1);
        var bytes = new byte[count][];
        var kinds = new TokenKind[count];
        // Ids no token names (gaps in a vocabulary) decode to nothing.
        Array.Fill(bytes, []);
        Array.Fill(kinds, TokenKind.Special);
        foreach ((string token, int id) in vocab)
        {
            bytes[id] = ByteLevelAlphabet.ToBytes(token);
            kinds[id] = TokenKind.Text;
        }
        // Hugging Face decodes added tokens through the same ByteLevel decoder; special ones are skipped.
        foreach ((string content, int id) in added)
        {
            bytes[id] = special.Contains(id) ? [] : ByteLevelAlphabet.ToBytes(content);
            kinds[id] = special.Contains(id) ? TokenKind.Special : TokenKind.Text;
        }
        return new TokenDecodeTable(bytes, kinds, stripDummyPrefix: false);
    }

    /// <summary>The SpecialToken that TemplateProcessing's "single" template starts with, looking inside a
    /// Sequence post-processor too (Llama 3.1 wraps it with ByteLevel).</summary>
    private static string? TemplateBos(JsonElement root)
    {
        if (!root.TryGetProperty("post_processor", out JsonElement post) || post.ValueKind != JsonValueKind.Object)
            return null;
        if (post.TryGetProperty("processors", out JsonElement list))
            return list.EnumerateArray().Select(FirstSpecial).FirstOrDefault(s => s is not null);
        return FirstSpecial(post);

        static string? FirstSpecial(JsonElement processor) =>
            processor.TryGetProperty("single", out JsonElement single) && single.GetArrayLength() > 0
            && single[0].TryGetProperty("SpecialToken", out JsonElement st)
                ? st.GetProperty("id").GetString()
                : null;
    }
}
