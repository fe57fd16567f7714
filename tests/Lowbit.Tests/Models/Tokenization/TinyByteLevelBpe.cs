using System.Text;
using System.Text.Json;
using Lowbit.Models.Tokenization;

namespace Lowbit.Tests.Models.Tokenization;

/// <summary>
/// A hand-made byte-level BPE tokenizer.json: ids 0..255 are the bytes in GPT-2's byte alphabet, then a few merges
/// ("Ġt", "he", "Ġthe", "ll", "Ġh"), "xyz" which no merge builds, then the special tokens &lt;|bos|&gt; and &lt;|eos|&gt;. The pre-tokenizer is
/// Llama 3's: Split with its regex, then ByteLevel without regex.
/// </summary>
internal static class TinyByteLevelBpe
{
    public const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static readonly string[] Merges = ["Ġ t", "h e", "Ġt he", "l l", "Ġ h"];

    public static int Id(string token) => Vocabulary()[token];

    public static Dictionary<string, int> Vocabulary()
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++)
            vocab[ByteLevelAlphabet.ToChar((byte)b).ToString()] = b;
        foreach (string token in (string[])["Ġt", "he", "Ġthe", "ll", "Ġh", "xyz"])
            vocab[token] = vocab.Count;
        return vocab;
    }

    public static TextTokenizer Load(bool withBos, bool ignoreMerges = false)
    {
        Dictionary<string, int> vocab = Vocabulary();
        int bos = vocab.Count, eos = vocab.Count + 1;
        var json = new
        {
            version = "1.0",
            added_tokens = new object[]
            {
                new { id = bos, content = "<|bos|>", single_word = false, lstrip = false, rstrip = false, normalized = false, special = true },
                new { id = eos, content = "<|eos|>", single_word = false, lstrip = false, rstrip = false, normalized = false, special = true },
            },
            normalizer = (object?)null,
            pre_tokenizer = new
            {
                type = "Sequence",
                pretokenizers = new object[]
                {
                    new { type = "Split", pattern = new { Regex = Llama3Pattern }, behavior = "Isolated", invert = false },
                    new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = false },
                },
            },
            decoder = new { type = "ByteLevel" },
            model = new { type = "BPE", ignore_merges = ignoreMerges, vocab, merges = Merges },
        };
        var files = new List<(string, byte[])> { ("tokenizer.json", JsonSerializer.SerializeToUtf8Bytes(json)) };
        if (withBos)
            files.Add(("tokenizer_config.json", Encoding.UTF8.GetBytes("""{"bos_token": "<|bos|>", "eos_token": "<|eos|>", "add_bos_token": true}""")));
        return TextTokenizer.Load(TokenizerFixtures.ModelDir([.. files]));
    }
}
