using Lowbit.Models.Tokenization;

namespace Lowbit.Tests.Models.Tokenization;

/// <summary>Paths of the tokenizer fixtures copied to the test output (tests/fixtures/**), and tokenizers loaded
/// from them once per test run.</summary>
internal static class TokenizerFixtures
{
    public static string Root { get; } = Path.Combine(AppContext.BaseDirectory, "fixtures");

    public static string Tok512Bin { get; } = Path.Combine(Root, "tokenizers", "tok512.bin");
    public static string Llama2Model { get; } = Path.Combine(Root, "tokenizers", "llama2-tokenizer.model");
    public static string Llama2Bin { get; } = Path.Combine(Root, "tokenizers", "llama2-tokenizer.bin");
    public static string Stories260KGreedy { get; } = Path.Combine(Root, "reference", "stories260K-greedy.json");

    private static readonly Lazy<TextTokenizer> s_llama2 = new(() => TextTokenizer.Load(ModelDir((TextTokenizer.SentencePieceFileName, File.ReadAllBytes(Llama2Model)))));
    private static readonly Lazy<TextTokenizer> s_tok512 = new(() => TextTokenizer.LoadLlama2c(Tok512Bin, 512));

    public static TextTokenizer Llama2 => s_llama2.Value;
    public static TextTokenizer Tok512 => s_tok512.Value;

    /// <summary>The first <paramref name="count"/> non-empty lines of the TinyStories validation excerpt.</summary>
    public static IReadOnlyList<string> TinyStoriesLines(int count) =>
        [.. File.ReadLines(Path.Combine(Root, "text", "tinystories-valid.txt")).Where(l => l.Length > 0).Take(count)];

    /// <summary>Texts that exercise whitespace handling, byte fallback, multi-byte and astral characters.</summary>
    public static IReadOnlyList<string> HardCases { get; } =
    [
        "", " ", "  two leading spaces", "trailing space ", "Hello\nworld", "tab\there", "multiple    spaces inside",
        "café naïve façade", "日本語のテキスト", "emoji 🦙🔥 mixed", "Ωmega ≥ 3 ∑", "â€œmojibakeâ€\u009d", "<s> literal </s>",
        "1234567890 3.14159", "don't won't it's", new string('a', 40), "\n\nnewlines first", "ÄÖÜ äöü ß",
        "Zürich – “quotes” …", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛", "x\u200by zero-width", "中文，标点。",
    ];

    /// <summary>A fresh directory under the test output holding the given files.</summary>
    public static string ModelDir(params (string Name, byte[] Content)[] files)
    {
        string dir = Path.Combine(AppContext.BaseDirectory, "tmp-models", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        foreach ((string name, byte[] content) in files)
            File.WriteAllBytes(Path.Combine(dir, name), content);
        return dir;
    }
}
