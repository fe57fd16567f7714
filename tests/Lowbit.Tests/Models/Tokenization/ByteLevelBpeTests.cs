using Lowbit.Models.Tokenization;

namespace Lowbit.Tests.Models.Tokenization;

public class ByteLevelBpeTests
{
    private static readonly TextTokenizer s_tokenizer = TinyByteLevelBpe.Load(withBos: true);

    [Fact]
    public void Load_ResolvesConfigTokens()
    {
        Assert.Equal(TinyByteLevelBpe.Vocabulary().Count, s_tokenizer.BosId);
        Assert.Equal([TinyByteLevelBpe.Vocabulary().Count + 1], s_tokenizer.EosIds);
        Assert.True(s_tokenizer.AddBosToken);
        Assert.Equal(TinyByteLevelBpe.Vocabulary().Count + 2, s_tokenizer.VocabSize);
    }

    [Fact]
    public void Encode_MergesWithinPreTokens()
    {
        int bos = s_tokenizer.BosId!.Value;
        // Pre-tokens "hello" and " the" ("Ġthe"); merges never cross them. Byte ids equal the byte values.
        Assert.Equal([bos, TinyByteLevelBpe.Id("he"), TinyByteLevelBpe.Id("ll"), 'o', TinyByteLevelBpe.Id("Ġthe")],
            s_tokenizer.Encode("hello the", addBos: true));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void IgnoreMerges_TakesAWholePreTokenFromTheVocabulary(bool ignoreMerges)
    {
        // "xyz" is a token no merge builds: Llama 3's ignore_merges takes it whole, plain BPE leaves the bytes.
        int[] expected = ignoreMerges ? [TinyByteLevelBpe.Id("xyz")] : ['x', 'y', 'z'];
        Assert.Equal(expected, TinyByteLevelBpe.Load(withBos: false, ignoreMerges).Encode("xyz", addBos: false));
    }

    [Fact]
    public void Encode_FindsSpecialTokensInText()
    {
        int eos = s_tokenizer.EosIds[0];
        Assert.Equal([TinyByteLevelBpe.Id("he"), eos, TinyByteLevelBpe.Id("Ġthe")], s_tokenizer.Encode("he<|eos|> the", addBos: false));
    }

    [Fact]
    public void Decode_SkipsSpecialTokensAndMapsBytesBack()
    {
        int[] ids = s_tokenizer.Encode("héllo\n🦙 the", addBos: true);
        Assert.Equal("héllo\n🦙 the", s_tokenizer.Decode([.. ids, s_tokenizer.EosIds[0]]));
    }

    [Fact]
    public void Encode_AstralLettersAndDigitsSplitByCodePoint()
    {
        // Llama 3's regex over code points: "𝔘𝔫" is one letter run, " " stays alone before the digits (which are
        // \p{N}, so " ?[^\s\p{L}\p{N}]+" cannot take them), and "𝟙𝟚𝟛𝟜" splits as 3 + 1 digits.
        var pre = new HuggingFacePreTokenizer([], [new System.Text.RegularExpressions.Regex(TinyByteLevelBpe.Llama3Pattern)]);
        string text = "𝔘𝔫 𝟙𝟚𝟛𝟜";
        string[] pieces = [.. pre.PreTokenize(text).Select(r => text.Substring(r.Offset, r.Length))];
        Assert.Equal(["𝔘𝔫", " ", "𝟙𝟚𝟛", "𝟜"], pieces);
    }

    [Fact]
    public void PreTokenize_AddedTokensFirstThenEachSplitWithinPieces()
    {
        var pre = new HuggingFacePreTokenizer(["<|eos|>"], [new(@"\p{N}"), new(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]);
        string text = "a  12<|eos|>it's";
        string[] pieces = [.. pre.PreTokenize(text).Select(r => text.Substring(r.Offset, r.Length))];
        Assert.Equal(["a", "  ", "1", "2", "<|eos|>", "it", "'s"], pieces);
    }
}
